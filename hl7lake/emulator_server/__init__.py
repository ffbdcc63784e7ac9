"""Our launcher for moto's server: SQS and request-overhead patches, and state across restarts."""
