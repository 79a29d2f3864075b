package org.apache.cassandra.tools;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.net.InetSocketAddress;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ExecutionException;

import com.datastax.driver.core.PlainTextAuthProvider;

import org.apache.cassandra.config.CassandraRelevantProperties;
import org.apache.cassandra.config.DatabaseDescriptor;
import org.apache.cassandra.config.EncryptionOptions;
import org.apache.cassandra.db.streaming.CassandraOutgoingFile;
import org.apache.cassandra.dht.Range;
import org.apache.cassandra.dht.Token;
import org.apache.cassandra.io.sstable.Component;
import org.apache.cassandra.io.sstable.Descriptor;
import org.apache.cassandra.io.sstable.SSTable;
import org.apache.cassandra.io.sstable.format.SSTableReader;
import org.apache.cassandra.io.util.File;
import org.apache.cassandra.io.util.PathUtils;
import org.apache.cassandra.locator.InetAddressAndPort;
import org.apache.cassandra.streaming.OutgoingStream;
import org.apache.cassandra.streaming.PreviewKind;
import org.apache.cassandra.streaming.SessionInfo;
import org.apache.cassandra.streaming.StreamException;
import org.apache.cassandra.streaming.StreamOperation;
import org.apache.cassandra.streaming.StreamPlan;
import org.apache.cassandra.streaming.StreamSession;
import org.apache.cassandra.utils.Pair;

/**
 * sstableloader's streaming without its process, and with whole SSTables: the cluster's ring
 * and schema are read once (sstableloader reads them again for every directory, then sleeps a
 * second before it exits), and any number of directories stream over it, concurrently.
 *
 * <p>Each SSTable goes with every component it has, its SAI index components included
 * (sstableloader opens the primary ones only), so that a replica owning all of an SSTable's
 * ranges receives the files as they are (zero-copy, 5.0 refuses a whole SSTable without its
 * index) instead of rewriting and reindexing its partitions. In Cassandra's package because
 * {@link BulkLoader}'s client is package-private in 5.0.
 */
public final class SSTableStreamer
{
    private final Client client;
    private final int connectionsPerHost;

    public SSTableStreamer(Set<InetSocketAddress> hosts, int storagePort,
                           String storageCompatibilityMode, String user, String password,
                           int connectionsPerHost)
    {
        writeVersionOf(storageCompatibilityMode);
        DatabaseDescriptor.clientInitialization();
        DatabaseDescriptor.setStreamEntireSSTables(true);
        // unthrottled: the client's defaults (24 MiB/s, shared by every stream of the JVM)
        // made streaming the slowest step of a load, one replica after another
        DatabaseDescriptor.setEntireSSTableStreamThroughputOutboundMebibytesPerSec(0);
        DatabaseDescriptor.setStreamThroughputOutboundBytesPerSec(0);
        // building SAI components opens the keyspace offline, with a store for each of its
        // tables, and a store needs a data directory (it holds nothing: the SSTables are
        // written where each writer says)
        DatabaseDescriptor.getRawConfig().data_file_directories = new String[]{ scratch() };
        this.client = new Client(hosts, storagePort,
                                 user == null ? null : new PlainTextAuthProvider(user, password));
        this.connectionsPerHost = connectionsPerHost;
    }

    /**
     * Streams the SSTables of {@code directory} (named keyspace/table) to their replicas.
     *
     * @return the replicas whose stream failed, when no more than {@code tolerated} did
     * @throws BulkLoadException when more did, naming them
     */
    public Set<String> stream(File directory, int tolerated) throws Exception
    {
        String keyspace = directory.parent().name();
        String table = directory.name();
        client.init(keyspace);
        Map<InetAddressAndPort, List<Range<Token>>> ranges = new HashMap<>();
        client.getEndpointToRangesMap().forEach(
            (replica, owned) -> ranges.put(replica, Range.normalize(owned)));
        StreamPlan plan = new StreamPlan(StreamOperation.BULK_LOAD, connectionsPerHost, false,
                                         null, PreviewKind.NONE)
                          .connectionFactory(client.getConnectionFactory());
        List<SSTableReader> opened = new ArrayList<>();
        try
        {
            Map<InetAddressAndPort, Collection<OutgoingStream>> streams = new HashMap<>();
            for (Map.Entry<Descriptor, Set<Component>> sstable : components(directory, keyspace, table).entrySet())
            {
                SSTableReader reader = SSTableReader.openForBatch(
                    null, sstable.getKey(), sstable.getValue(), client.getTableMetadata(table));
                opened.add(reader);
                ranges.forEach((replica, owned) -> {
                    List<SSTableReader.PartitionPositionBounds> sections = reader.getPositionsForRanges(owned);
                    if (!sections.isEmpty())  // an empty stream is an error on the server
                        streams.computeIfAbsent(replica, unused -> new ArrayList<>()).add(
                            new CassandraOutgoingFile(StreamOperation.BULK_LOAD, reader.ref(), sections,
                                                      owned, reader.estimatedKeysForRanges(owned)));
                });
                reader.releaseInMemoryComponents();
            }
            streams.forEach(plan::transferStreams);
            try
            {
                plan.execute().get();
                return Set.of();
            }
            catch (ExecutionException error)
            {
                Set<String> failed = failedReplicas(error.getCause());
                if (failed.isEmpty() || failed.size() > tolerated)
                    throw new BulkLoadException(new IllegalStateException(
                        "streaming " + directory + " failed to " + (failed.isEmpty() ? "the cluster" : failed),
                        error.getCause()));
                return failed;
            }
        }
        finally
        {
            for (SSTableReader reader : opened)
                reader.selfRef().release();
        }
    }

    /**
     * Makes the JVM write the SSTable version of servers in {@code mode}. A client writes the
     * newest ("oa") whatever the servers' mode, and a server in 5.0's default CASSANDRA_4 mode
     * takes whole "oa" SSTables in but then refuses to start over them. The version is fixed
     * when the format's version class is loaded, from the mode of the system property (the
     * client's initialization later forces the mode to NONE): so it is loaded first, once.
     */
    private static synchronized void writeVersionOf(String mode)
    {
        String written = System.getProperty(CassandraRelevantProperties.TEST_STORAGE_COMPATIBILITY_MODE.getKey());
        if (written != null && !written.equals(mode))
            throw new IllegalStateException("this writer JVM writes SSTables for servers in mode "
                                            + written + ", not " + mode);
        CassandraRelevantProperties.TEST_STORAGE_COMPATIBILITY_MODE.setString(mode);
        try
        {
            Class.forName("org.apache.cassandra.io.sstable.format.big.BigFormat$BigVersion", true,
                          SSTableStreamer.class.getClassLoader());
        }
        catch (ClassNotFoundException error)
        {
            throw new IllegalStateException(error);
        }
    }

    private static String scratch()
    {
        try
        {
            Path scratch = Files.createTempDirectory("cre-sstable-writer-");
            Runtime.getRuntime().addShutdownHook(new Thread(() -> PathUtils.deleteRecursive(scratch)));
            return scratch.toString();
        }
        catch (IOException error)
        {
            throw new UncheckedIOException(error);
        }
    }

    /** Each SSTable of the directory and every component file it has. */
    private static Map<Descriptor, Set<Component>> components(File directory, String keyspace, String table)
    {
        Map<Descriptor, Set<Component>> sstables = new HashMap<>();
        for (File file : directory.tryList())
        {
            Pair<Descriptor, Component> component = SSTable.tryComponentFromFilename(file, keyspace, table);
            if (component != null)
                sstables.computeIfAbsent(component.left, unused -> new HashSet<>()).add(component.right);
        }
        return sstables;
    }

    private static Set<String> failedReplicas(Throwable error)
    {
        Set<String> failed = new TreeSet<>();
        if (error instanceof StreamException)
            for (SessionInfo session : ((StreamException) error).finalState.sessions())
                if (session.state == StreamSession.State.FAILED)
                    failed.add(session.peer.getAddress().getHostAddress());
        return failed;
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
