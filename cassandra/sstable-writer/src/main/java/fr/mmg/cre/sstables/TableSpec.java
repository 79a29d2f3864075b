package fr.mmg.cre.sstables;

import java.util.List;

/** What a bulk write of one table writes, and where its SSTables go before they are loaded. */
public final class TableSpec
{
    public String keyspace;
    public String table;
    /** The table's CREATE TABLE statement, as the cluster describes it. */
    public String schema;
    /** The table's CREATE INDEX statements: the SSTables carry their SAI components. */
    public List<String> indexes = List.of();
    /** INSERT of {@link #columns}: the cells a row makes. */
    public String insert;
    /** The cells' write time (microseconds): the same cells on every retry. */
    public long writeTimestamp;
    /** The columns of the Arrow batches, in the INSERT's order. */
    public List<String> columns;
    /** The partition key's columns, in the key's order: the row's token. */
    public List<String> partitionKey;
    /** The ring's tokens, ascending, and the group (replica set) owning the range ending at
     * each: one writer per group, so that each SSTable goes to its own replicas only. */
    public long[] ring;
    public int[] owners;
    public String directory;
    public int bufferMib = 64;
    /** How many replicas of a range may miss its SSTables, the load still complete: the
     * write consistency's margin (one of three at QUORUM); a node that missed them catches up
     * by repair, as it would after CQL writes past their hints' window. */
    public int toleratedReplicaFailures;
    /** Where the SSTables stream to. */
    public Target target;
}
