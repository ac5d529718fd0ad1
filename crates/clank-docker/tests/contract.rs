//! The shared runtime contract (`clank_testkit::runtime`) against the real Docker engine.

mod common;

clank_testkit::runtime_contract_tests!(docker, common::docker_fixture);
