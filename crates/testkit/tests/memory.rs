//! The contract suite against the in-memory reference adapter.

buzzgate_testkit::contract_suite!(memory, async { Some(buzzgate_testkit::Ports::memory()) });
