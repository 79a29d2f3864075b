package org.apache.cassandra.io.sstable;

import java.io.IOException;
import java.lang.reflect.Field;
import java.nio.ByteBuffer;
import java.util.List;

import org.apache.cassandra.db.BufferDecoratedKey;
import org.apache.cassandra.db.Clustering;
import org.apache.cassandra.db.LivenessInfo;
import org.apache.cassandra.db.rows.BTreeRow;
import org.apache.cassandra.db.rows.BufferCell;
import org.apache.cassandra.db.rows.Row;
import org.apache.cassandra.dht.Murmur3Partitioner;
import org.apache.cassandra.schema.ColumnMetadata;
import org.apache.cassandra.schema.TableMetadata;

/**
 * Rows appended to a sorted {@link CQLSSTableWriter} as the cells its INSERT would make (the
 * primary key's liveness and a cell per column, a tombstone for a null, all at one write
 * timestamp), without the statement's per-row work (bind markers, restrictions, validation):
 * that work was most of the writer's CPU. In Cassandra's package because the writer's
 * partition builder is package-private.
 */
public final class SortedRows
{
    private final AbstractSSTableSimpleWriter writer;
    private final ColumnMetadata[] regular;  // per column of the rows; null for a key column
    private final long timestamp;
    private final long nowInSeconds = System.currentTimeMillis() / 1000;

    /** Appends to {@code sorted} (built with {@code sorted()}) rows of {@code columns}. */
    public SortedRows(CQLSSTableWriter sorted, List<String> columns, long timestamp)
    throws ReflectiveOperationException
    {
        Field field = CQLSSTableWriter.class.getDeclaredField("writer");
        field.setAccessible(true);
        this.writer = (AbstractSSTableSimpleWriter) field.get(sorted);
        TableMetadata metadata = writer.metadata.get();
        this.regular = new ColumnMetadata[columns.size()];
        for (int index = 0; index < regular.length; index++)
        {
            ColumnMetadata column = metadata.getColumn(ByteBuffer.wrap(
                columns.get(index).getBytes(java.nio.charset.StandardCharsets.UTF_8)));
            if (column == null)
                throw new IllegalArgumentException(metadata + " has no column " + columns.get(index));
            regular[index] = column.isPrimaryKeyColumn() ? null : column;
        }
        this.timestamp = timestamp;
    }

    /** The row of partition {@code key} (its token given) and {@code clustering}, in order. */
    public void add(long token, ByteBuffer key, Clustering<?> clustering, ByteBuffer[] values)
    throws IOException
    {
        Row.Builder row = BTreeRow.unsortedBuilder();
        row.newRow(clustering);
        row.addPrimaryKeyLivenessInfo(LivenessInfo.create(timestamp, nowInSeconds));
        for (int index = 0; index < values.length; index++)
        {
            ColumnMetadata column = regular[index];
            if (column != null)
                row.addCell(values[index] == null
                            ? BufferCell.tombstone(column, timestamp, nowInSeconds)
                            : BufferCell.live(column, timestamp, values[index]));
        }
        writer.getUpdateFor(new BufferDecoratedKey(new Murmur3Partitioner.LongToken(token), key))
              .add(row.build());
    }
}
