"""Exchange and sharing (交换共享): data requests, per-request shares, the Delta Sharing service, the ledger."""
