//! Redis adapter for Buzzgate's short-lived and hot ports.
