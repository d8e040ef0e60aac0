"""``python -m npgrad`` is the ``npgrad`` command."""
from .cli import main

raise SystemExit(main())
