"""gRPC serving (TF Serving-compatible API) and query client for the retrieval model."""
