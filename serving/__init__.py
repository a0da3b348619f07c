"""TF Serving-compatible gRPC + REST serving and a query client for the retrieval model."""
