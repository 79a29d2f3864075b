package fr.mmg.cre.sstables;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.ByteArrayInputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.HashMap;
import java.util.Map;
import java.util.PriorityQueue;
import java.util.SortedSet;
import java.util.TreeSet;
import java.util.Set;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Semaphore;
import java.util.concurrent.TimeUnit;

import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.vector.VectorSchemaRoot;
import org.apache.arrow.vector.ipc.ArrowStreamReader;

import org.apache.cassandra.cql3.statements.schema.CreateTableStatement;
import org.apache.cassandra.db.Clustering;
import org.apache.cassandra.db.ClusteringComparator;
import org.apache.cassandra.dht.Murmur3Partitioner;
import org.apache.cassandra.io.sstable.CQLSSTableWriter;
import org.apache.cassandra.io.sstable.SortedRows;
import org.apache.cassandra.io.util.File;
import org.apache.cassandra.io.util.PathUtils;
import org.apache.cassandra.schema.ColumnMetadata;
import org.apache.cassandra.schema.TableMetadata;
import org.apache.cassandra.utils.ByteBufferUtil;
import org.apache.cassandra.tools.SSTableStreamer;

/**
 * One table's bulk write in one worker. Its rows are taken on a thread of its own (so that a
 * worker's tables are written side by side) into a chunk of bounded size; a full chunk is
 * sorted (by replica group, token, key and clustering) and spilled to the local disk as a run,
 * while the next chunk fills. The close merges the runs and writes them with Cassandra's
 * sorted writer, one SSTable per replica group (it holds only the ranges those replicas own),
 * each streamed as soon as it is written: an external sort, its memory bounded by the chunks.
 */
final class TableChannel
{
    private static final int QUEUED_BATCHES = 4;  // the rows waiting for the writer: bounded
    // the ring's slices merged side by side at the close: one per core (a few SSTables, below
    // the four similar ones a size-tiered replica would compact at once)
    private static final int SLICES = Math.min(3, Runtime.getRuntime().availableProcessors());
    private static final long SLICE_WIDTH = Long.MAX_VALUE / SLICES + 1;  // of tokens halved, >= 0
    private static final int CHUNKS_IN_FLIGHT = 2;  // filling, or sorted and spilled: bounded
    // what a row costs the heap beside its values' bytes: a chunk of bufferMib is about that
    private static final int VALUE_HEAP = 72;  // a ByteBuffer, its array's header, a slot
    private static final int ROW_HEAP = 160;  // the Row, its array, the key's buffer, its clustering

    private final TableSpec spec;
    private final SSTableStreamer streamer;
    private final ExecutorService streams;
    private final int[] keyColumns;
    private final int[] clusteringColumns;
    private final ClusteringComparator comparator;
    private final ExecutorService writing;
    private final Semaphore queued = new Semaphore(QUEUED_BATCHES);
    private final Semaphore inFlight = new Semaphore(CHUNKS_IN_FLIGHT);
    private final List<Run> runs = new ArrayList<>();
    private final List<CompletableFuture<Void>> spills = new ArrayList<>();
    private final long chunkBytes;
    private List<Row> chunk = new ArrayList<>();
    private long bytesInChunk;
    private long rows;
    private final Set<String> missed = ConcurrentHashMap.newKeySet();  // replicas a stream failed to
    private volatile Throwable error;

    /** A row's values, and what it is sorted by: its replica group, token, key and clustering
     * (made once per row, not per comparison). */
    private record Row(ByteBuffer[] values, int group, long token, ByteBuffer key,
                       Clustering<?> clustering) {}

    TableChannel(TableSpec spec, SSTableStreamer streamer, ExecutorService streams)
    {
        this.spec = spec;
        this.streamer = streamer;
        this.streams = streams;
        this.chunkBytes = (long) spec.bufferMib << 20;
        TableMetadata metadata = CreateTableStatement.parse(spec.schema, spec.keyspace).build();
        this.comparator = metadata.comparator;
        this.keyColumns = indexes(metadata.partitionKeyColumns());
        this.clusteringColumns = indexes(metadata.clusteringColumns());
        this.writing = Executors.newSingleThreadExecutor(
            runnable -> new Thread(runnable, "sstable-writer-" + spec.table));
    }

    private int[] indexes(List<ColumnMetadata> columns)
    {
        int[] found = columns.stream().mapToInt(column -> spec.columns.indexOf(column.name.toString()))
                             .toArray();
        if (Arrays.stream(found).anyMatch(index -> index < 0))
            throw new IllegalArgumentException("the columns " + spec.columns + " lack one of "
                                               + columns + ", in the primary key");
        return found;
    }

    /** Queues an Arrow IPC stream of rows for the writer; blocks while the queue is full. */
    void submit(byte[] arrowStream, BufferAllocator allocator) throws InterruptedException
    {
        queued.acquire();
        writing.execute(() -> {
            try (ArrowStreamReader reader = new ArrowStreamReader(
                     new ByteArrayInputStream(arrowStream), allocator))
            {
                VectorSchemaRoot root = reader.getVectorSchemaRoot();
                while (error == null && reader.loadNextBatch())
                    take(root);
            }
            catch (Throwable failure)
            {
                fail(failure);
            }
            finally
            {
                queued.release();
            }
        });
    }

    private void fail(Throwable cause)
    {
        if (error == null)
            error = cause;
    }

    private void take(VectorSchemaRoot batch) throws InterruptedException
    {
        CqlBytes[] columns = new CqlBytes[spec.columns.size()];
        for (int column = 0; column < columns.length; column++)
        {
            var vector = batch.getVector(spec.columns.get(column));
            if (vector == null)
                throw new IllegalArgumentException("the rows have no column " + spec.columns.get(column));
            columns[column] = CqlBytes.of(vector);
        }
        for (int index = 0; index < batch.getRowCount(); index++)
        {
            ByteBuffer[] values = new ByteBuffer[columns.length];
            for (int column = 0; column < columns.length; column++)
            {
                values[column] = columns[column].get(index);
                bytesInChunk += values[column] == null ? 8 : values[column].remaining() + VALUE_HEAP;
            }
            bytesInChunk += ROW_HEAP;
            ByteBuffer key = partitionKey(values);
            long token = ((Murmur3Partitioner.LongToken) Murmur3Partitioner.instance.getToken(key)).token;
            chunk.add(new Row(values, group(token), token, key, clustering(values)));
            if (bytesInChunk >= chunkBytes)
                writeChunk();
        }
        rows += batch.getRowCount();
    }

    /** The replica group owning a token: that of the first ring token at or after it. */
    private int group(long token)
    {
        int position = Arrays.binarySearch(spec.ring, token);
        if (position < 0)
            position = -position - 1;
        return spec.owners[position == spec.ring.length ? 0 : position];
    }

    /** The key a partitioner hashes: the value, or each component framed (CompositeType). */
    private ByteBuffer partitionKey(ByteBuffer[] values)
    {
        if (keyColumns.length == 1)
            return values[keyColumns[0]].duplicate();
        int size = 0;
        for (int column : keyColumns)
            size += 3 + values[column].remaining();
        ByteBuffer key = ByteBuffer.allocate(size);
        for (int column : keyColumns)
        {
            ByteBuffer part = values[column].duplicate();
            key.putShort((short) part.remaining()).put(part).put((byte) 0);
        }
        return key.flip();
    }

    private Clustering<?> clustering(ByteBuffer[] row)
    {
        ByteBuffer[] values = new ByteBuffer[clusteringColumns.length];
        for (int index = 0; index < values.length; index++)
            values[index] = row[clusteringColumns[index]];
        return Clustering.make(values);
    }

    /** The SSTables' order within a replica group: token, key, clustering. */
    private int compare(Row one, Row other)
    {
        int order = Integer.compare(one.group(), other.group());
        if (order == 0)
            order = Long.compare(one.token(), other.token());
        if (order == 0)
            order = one.key().compareTo(other.key());
        return order != 0 ? order : comparator.compare(one.clustering(), other.clustering());
    }

    /** Hands the chunk to a stream thread, which sorts and spills it; blocks while as many
     * chunks are in flight as memory allows. */
    private void writeChunk() throws InterruptedException
    {
        inFlight.acquire();
        List<Row> full = chunk;
        Run run = new Run(new File(spec.directory, "run-" + (runs.size() + 1)));
        chunk = new ArrayList<>();
        bytesInChunk = 0;
        runs.add(run);
        spills.add(CompletableFuture.runAsync(() -> spill(full, run), streams));
    }

    private void spill(List<Row> rows, Run run)
    {
        try
        {
            rows.sort(this::compare);
            run.write(rows);
        }
        catch (Throwable failure)
        {
            failure.printStackTrace();  // the reply has one line; the worker's log the trace
            throw new IllegalStateException(failure);
        }
        finally
        {
            inFlight.release();
        }
    }

    /** Waits for the queued rows and the spilled runs, merges the runs into one SSTable per
     * replica group and waits for every stream. */
    Map<String, Object> close() throws Throwable
    {
        long started = System.nanoTime();
        writing.shutdown();
        while (!writing.awaitTermination(1, TimeUnit.SECONDS))
            ;
        if (error != null)
            throw error;
        if (!chunk.isEmpty())
            writeChunk();
        for (CompletableFuture<Void> spilled : spills)
            spilled.join();
        long written = System.nanoTime();
        List<CompletableFuture<Long>> streamed = merge();  // submitted: the close waits
        long bytes = 0;
        for (CompletableFuture<Long> stream : streamed)
            bytes += stream.join();
        return Map.of("rows", rows, "runs", runs.size(), "sstables", streamed.size(),
                      "bytes", bytes, "missed_replicas", List.copyOf(missed),
                      "close_seconds", (written - started) / 1e9,
                      "load_seconds", (System.nanoTime() - written) / 1e9,
                      "jvm_cpu_seconds", ((com.sun.management.OperatingSystemMXBean)
                          java.lang.management.ManagementFactory.getOperatingSystemMXBean())
                          .getProcessCpuTime() / 1e9);
    }

    /**
     * The runs merged in order into one SSTable per replica group and slice of the ring, each
     * streamed once written. The slices (one per core) are merged side by side. A few SSTables
     * per table and replica set per load, not one per chunk: a replica receiving a series of
     * similar SSTables compacts them (size-tiered, four at a time, again and again as they
     * grow), and every replica does, which cost the three-node cluster more CPU than the
     * writer's whole work.
     */
    private List<CompletableFuture<Long>> merge()
    {
        SortedSet<Integer> segments = new TreeSet<>();
        for (Run run : runs)
            segments.addAll(run.segments.keySet());
        List<CompletableFuture<Long>> streamed = new ArrayList<>();
        for (int segment : segments)
            streamed.add(CompletableFuture.supplyAsync(() -> mergeAndStream(segment), streams));
        return streamed;
    }

    private long mergeAndStream(int segment)
    {
        File directory = new File(spec.directory, "segment-" + segment + "/" + spec.keyspace
                                                  + "/" + spec.table);
        directory.tryCreateDirectories();
        PriorityQueue<RunReader> heads = new PriorityQueue<>((one, other) -> compare(one.head, other.head));
        try
        {
            for (Run run : runs)
            {
                long[] where = run.segments.get(segment);
                if (where != null)
                {
                    RunReader reader = new RunReader(run.file, where[0], where[1]);
                    if (reader.next())
                        heads.add(reader);
                }
            }
            try (CQLSSTableWriter writer = CQLSSTableWriter.builder().inDirectory(directory)
                     .forTable(spec.schema).using(spec.insert)
                     .withIndexes(spec.indexes.toArray(String[]::new)).sorted().build())
            {
                SortedRows sorted = new SortedRows(writer, spec.columns, spec.writeTimestamp);
                while (!heads.isEmpty())
                {
                    RunReader reader = heads.poll();
                    Row row = reader.head;
                    sorted.add(row.token(), row.key(), row.clustering(), row.values());
                    if (reader.next())
                        heads.add(reader);
                }
            }
            long bytes = 0;
            for (File file : directory.tryList())
                bytes += file.length();
            missed.addAll(streamer.stream(directory, spec.toleratedReplicaFailures));
            return bytes;
        }
        catch (Throwable failure)  // Cassandra's FSErrors too
        {
            failure.printStackTrace();  // the reply has one line; the worker's log the trace
            throw new IllegalStateException(failure);
        }
        finally
        {
            heads.forEach(RunReader::close);
        }
    }

    /** The segment of a row: its replica group, then its slice of the ring. The rows' order
     * (group, token) keeps each segment of a sorted run contiguous. */
    private int segment(Row row)
    {
        return row.group() * SLICES + (int) (((row.token() >> 1) + (1L << 62)) / SLICE_WIDTH);
    }

    /** A sorted chunk spilled to the local disk: each row its group, token and values (each
     * length-prefixed, -1 for a null); where each segment starts in it and its row count. */
    private final class Run
    {
        final File file;
        final Map<Integer, long[]> segments = new HashMap<>();

        Run(File file)
        {
            this.file = file;
        }

        void write(List<Row> sorted) throws IOException
        {
            file.parent().tryCreateDirectories();
            try (DataOutputStream out = new DataOutputStream(new BufferedOutputStream(
                     Files.newOutputStream(file.toPath()), 1 << 20)))
            {
                for (Row row : sorted)
                {
                    segments.computeIfAbsent(segment(row), unused -> new long[]{ out.size(), 0 })[1]++;
                    out.writeInt(row.group());
                    out.writeLong(row.token());
                    for (ByteBuffer value : row.values())
                    {
                        out.writeInt(value == null ? -1 : value.remaining());
                        if (value != null)
                            out.write(ByteBufferUtil.getArray(value));
                    }
                }
            }
        }
    }

    /** One segment of a run, read back one row at a time by the merge. */
    private final class RunReader implements AutoCloseable
    {
        private final DataInputStream in;
        private long left;
        Row head;

        RunReader(File file, long offset, long rows) throws IOException
        {
            FileChannel channel = FileChannel.open(file.toPath()).position(offset);
            this.in = new DataInputStream(new BufferedInputStream(Channels.newInputStream(channel), 1 << 16));
            this.left = rows;
        }

        /** The next row as {@link #head}; false (and the file closed) after the last. */
        boolean next() throws IOException
        {
            if (left-- == 0)
            {
                close();
                return false;
            }
            int group = in.readInt();
            long token = in.readLong();
            ByteBuffer[] values = new ByteBuffer[spec.columns.size()];
            for (int column = 0; column < values.length; column++)
            {
                int length = in.readInt();
                if (length >= 0)
                {
                    byte[] value = new byte[length];
                    in.readFully(value);
                    values[column] = ByteBuffer.wrap(value);
                }
            }
            head = new Row(values, group, token, partitionKey(values), clustering(values));
            return true;
        }

        @Override
        public void close()
        {
            try
            {
                in.close();
            }
            catch (IOException ignored)
            {
                // a read-only file: nothing was left unwritten
            }
        }
    }

    /** Removes what is left of the SSTables written here (a failure's, or loaded ones'). */
    void discard()
    {
        writing.shutdownNow();
        File root = new File(spec.directory);
        if (root.exists())
            PathUtils.deleteRecursive(root.toPath());
    }
}
