"""The staff pages: worklist, case, dashboard, accounts (server-rendered, three languages)."""
