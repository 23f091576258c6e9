"""Software-defined assets by stage, declared from the source registry: ``assets.defs`` is what loads."""
