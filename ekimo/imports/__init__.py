"""The import engine: an uploaded file in, validated rows merged into the catalog."""
