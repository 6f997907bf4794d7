"""The catalog: the Product table, the statements that write it, browse, one product, export."""
