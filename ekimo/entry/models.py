"""Every table of every domain, registered on one metadata (for Alembic)."""

from ekimo.imports.models import Import, import_rejected_rows, import_upload_chunks, import_uploads
from ekimo.products.models import Product
from ekimo.sync.models import SyncRun
from ekimo.users.models import User

__all__ = [
    "Import",
    "Product",
    "SyncRun",
    "User",
    "import_rejected_rows",
    "import_upload_chunks",
    "import_uploads",
]
