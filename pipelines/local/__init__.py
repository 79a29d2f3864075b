"""What runs the product on one machine: local Cassandra and Flink servers, the sender
simulator (``generate``) and the Dataflow Flex Template builder."""
