"""The product catalog: model, import (CSV/XLSX), browse and export."""
