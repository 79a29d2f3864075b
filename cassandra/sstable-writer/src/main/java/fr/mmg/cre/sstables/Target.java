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
}
