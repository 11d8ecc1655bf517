//! The shared contract suite over the Postgres adapter. Each case gets a schema of its own
//! and two stores on it, each with its own pool: the second is `node2`, another node.

mod common;

use buzzgate_testkit::Ports;

async fn fixture() -> Option<Ports> {
    let schema = common::fresh_schema().await?;
    let node1 = common::store_in(&schema).await?;
    let node2 = common::store_in(&schema).await?;
    Some(common::ports(node1, Some(common::ports(node2, None))))
}

buzzgate_testkit::contract_suite!(postgres, fixture());
