package fr.mmg.cre.sstables;

import java.io.ByteArrayInputStream;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
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
import org.apache.cassandra.tools.SSTableStreamer;

/**
 * One table's bulk write in one worker. Its rows are taken on a thread of its own (so that a
 * worker's tables are written side by side) into a chunk of bounded size; a full chunk is
 * sorted (by replica group, token, key and clustering) and written by Cassandra's sorted
 * writer, one SSTable per replica group (it holds only the ranges those replicas own), and
 * streamed at once, while the next chunk fills. The close writes the last chunk and waits for
 * every stream.
 */
final class TableChannel
{
    private static final int QUEUED_BATCHES = 4;  // the rows waiting for the writer: bounded
    private static final int CHUNKS_IN_FLIGHT = 2;  // sorted, written or streaming: bounded
    // what a row costs the heap beside its values' bytes: a chunk of bufferMib is about that
    private static final int VALUE_HEAP = 72;  // a ByteBuffer, its array's header, a slot
    private static final int ROW_HEAP = 120;  // the Row, its array, the key's buffer

    private final TableSpec spec;
    private final SSTableStreamer streamer;
    private final ExecutorService streams;
    private final int[] keyColumns;
    private final int[] clusteringColumns;
    private final ClusteringComparator comparator;
    private final ExecutorService writing;
    private final Semaphore queued = new Semaphore(QUEUED_BATCHES);
    private final Semaphore inFlight = new Semaphore(CHUNKS_IN_FLIGHT);
    private final List<CompletableFuture<Long>> chunks = new ArrayList<>();
    private final long chunkBytes;
    private List<Row> chunk = new ArrayList<>();
    private long bytesInChunk;
    private long rows;
    private volatile Throwable error;

    /** A row's values, its replica group and token: what it is sorted by. */
    private record Row(ByteBuffer[] values, int group, long token, ByteBuffer key) {}

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
            chunk.add(new Row(values, group(token), token, key));
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

    private Clustering<?> clustering(Row row)
    {
        ByteBuffer[] values = new ByteBuffer[clusteringColumns.length];
        for (int index = 0; index < values.length; index++)
            values[index] = row.values()[clusteringColumns[index]];
        return Clustering.make(values);
    }

    /** Hands the chunk to a stream thread, which sorts, writes and streams it; blocks while
     * as many chunks are in flight as memory allows. */
    private void writeChunk() throws InterruptedException
    {
        inFlight.acquire();
        List<Row> full = chunk;
        int number = chunks.size() + 1;
        chunk = new ArrayList<>();
        bytesInChunk = 0;
        chunks.add(CompletableFuture.supplyAsync(() -> writeAndStream(full, number), streams));
    }

    private long writeAndStream(List<Row> sorted, int number)
    {
        sorted.sort(Comparator.comparingInt(Row::group).thenComparingLong(Row::token)
                              .thenComparing(Row::key)
                              .thenComparing(this::clustering, comparator::compare));
        long bytes = 0;
        try
        {
            for (int start = 0; start < sorted.size(); )
            {
                int group = sorted.get(start).group();
                File directory = new File(spec.directory, "chunk-" + number + "-group-" + group
                                                          + "/" + spec.keyspace + "/" + spec.table);
                directory.tryCreateDirectories();
                try (CQLSSTableWriter writer = CQLSSTableWriter.builder().inDirectory(directory)
                         .forTable(spec.schema).using(spec.insert).sorted().build())
                {
                    SortedRows rows = new SortedRows(writer, spec.columns, spec.writeTimestamp);
                    for (; start < sorted.size() && sorted.get(start).group() == group; start++)
                    {
                        Row row = sorted.get(start);
                        rows.add(row.token(), row.key(), clustering(row), row.values());
                    }
                }
                for (File file : directory.tryList())
                    bytes += file.length();
                streamer.stream(directory);
            }
        }
        catch (Exception failure)
        {
            throw new IllegalStateException(failure);
        }
        finally
        {
            inFlight.release();
        }
        return bytes;
    }

    /** Waits for the queued rows, writes the last chunk and waits for every stream. */
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
        long written = System.nanoTime();
        long bytes = 0;
        for (CompletableFuture<Long> streamed : chunks)
            bytes += streamed.join();
        return Map.of("rows", rows, "sstables", chunks.size(), "bytes", bytes,
                      "close_seconds", (written - started) / 1e9,
                      "load_seconds", (System.nanoTime() - written) / 1e9,
                      "jvm_cpu_seconds", ((com.sun.management.OperatingSystemMXBean)
                          java.lang.management.ManagementFactory.getOperatingSystemMXBean())
                          .getProcessCpuTime() / 1e9);
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
