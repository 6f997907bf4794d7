"""The optimistic import paths: clean files go straight to PostgreSQL, anything unusual steps
aside to the row-by-row path, which reports exact errors."""
