//! PostgreSQL adapter for Buzzgate's durable ports.
