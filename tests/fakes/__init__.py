"""In-memory fakes of the production adapters, for tests and the gateway benchmark (never shipped:
the wheel holds only the production packages). Each keeps the semantics of the adapter it stands for,
and shares its protocol helpers with it."""
