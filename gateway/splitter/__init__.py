"""The batch splitter: the front door's worker that turns a large batch body into messages."""
