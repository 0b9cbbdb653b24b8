"""
C{python -m txsessions}: the admin command, L{txsessions.admin}.
"""

from .admin import main

if __name__ == "__main__":
    main()
