package fr.mmg.cre.sstables;

import java.util.List;

/** The cluster the SSTables are streamed to (SSTableLoader: every replica of every range). */
public final class Target
{
    public List<String> hosts;
    public int nativePort = 9042;
    public int storagePort = 7000;
    public String username;
    public String password;
    public int connectionsPerHost = 1;
    /** The servers' storage_compatibility_mode: the SSTable version they read (CASSANDRA_4:
     * "nb", 5.0's default; NONE: "oa"). A server refuses to start over SSTables newer than its
     * own, and whole SSTables land as they were written. */
    public String storageCompatibilityMode = "CASSANDRA_4";
}
