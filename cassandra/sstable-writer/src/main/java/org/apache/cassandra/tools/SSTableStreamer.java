package org.apache.cassandra.tools;

import java.net.InetSocketAddress;
import java.util.Set;

import com.datastax.driver.core.PlainTextAuthProvider;

import org.apache.cassandra.config.DatabaseDescriptor;
import org.apache.cassandra.config.EncryptionOptions;
import org.apache.cassandra.io.sstable.SSTableLoader;
import org.apache.cassandra.io.util.File;
import org.apache.cassandra.utils.OutputHandler;

/**
 * sstableloader's streaming without its process: the cluster's ring and schema are read once
 * (sstableloader reads them again for every directory, then sleeps a second before it exits),
 * and any number of directories stream over it, concurrently. In Cassandra's package because
 * {@link BulkLoader}'s client is package-private in 5.0.
 */
public final class SSTableStreamer
{
    private final Client client;
    private final int connectionsPerHost;
    private final OutputHandler output = new OutputHandler.LogOutput();

    public SSTableStreamer(Set<InetSocketAddress> hosts, int storagePort, String user,
                           String password, int connectionsPerHost)
    {
        DatabaseDescriptor.clientInitialization();
        // whole SSTables would go without their SAI components (the loader has no index
        // manager) and 5.0 refuses them; streamed by partition, each replica writes its own
        // SSTables and builds its own indexes on receipt, still past its write path
        DatabaseDescriptor.setStreamEntireSSTables(false);
        this.client = new Client(hosts, storagePort,
                                 user == null ? null : new PlainTextAuthProvider(user, password));
        this.connectionsPerHost = connectionsPerHost;
    }

    /** Streams the SSTables of {@code directory} (named keyspace/table) to their replicas. */
    public void stream(File directory) throws Exception
    {
        SSTableLoader loader = new SSTableLoader(directory.toAbsolute(), client, output,
                                                 connectionsPerHost, null, null);
        try
        {
            loader.stream(Set.of()).get();
        }
        catch (Exception error)
        {
            throw new BulkLoadException(new IllegalStateException(
                "streaming " + directory + " failed to " + loader.getFailedHosts(), error));
        }
    }

    /** BulkLoader's client, its ring and schema read once. */
    private static final class Client extends BulkLoader.ExternalClient
    {
        private boolean initialized;

        Client(Set<InetSocketAddress> hosts, int storagePort,
               com.datastax.driver.core.AuthProvider auth)
        {
            super(hosts, storagePort, auth,
                  (EncryptionOptions.ServerEncryptionOptions)
                  new EncryptionOptions.ServerEncryptionOptions().applyConfig(), null);
        }

        @Override
        public synchronized void init(String keyspace)
        {
            if (!initialized)
                super.init(keyspace);
            initialized = true;
        }
    }
}
