"""Events: ingestion of posted events and their routing to triggered campaigns."""
