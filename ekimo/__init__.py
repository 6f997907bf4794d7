"""ekimo: a product-catalog service."""
