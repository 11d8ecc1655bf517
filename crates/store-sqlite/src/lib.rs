//! SQLite adapter (the embedded default) for Buzzgate's durable ports.
