package fr.mmg.cre.sstables;

import java.nio.ByteBuffer;

import org.apache.arrow.vector.BigIntVector;
import org.apache.arrow.vector.BitVector;
import org.apache.arrow.vector.DateDayVector;
import org.apache.arrow.vector.DecimalVector;
import org.apache.arrow.vector.FieldVector;
import org.apache.arrow.vector.FixedSizeBinaryVector;
import org.apache.arrow.vector.Float4Vector;
import org.apache.arrow.vector.Float8Vector;
import org.apache.arrow.vector.IntVector;
import org.apache.arrow.vector.SmallIntVector;
import org.apache.arrow.vector.TimeStampVector;
import org.apache.arrow.vector.TinyIntVector;
import org.apache.arrow.vector.VarBinaryVector;
import org.apache.arrow.vector.VarCharVector;
import org.apache.arrow.vector.types.pojo.ArrowType;

import org.apache.cassandra.db.marshal.DecimalType;
import org.apache.cassandra.utils.ByteBufferUtil;

/**
 * An Arrow column's values as CQL's serialized values, the bytes the native protocol carries
 * (io_connectors/cql_values.py writes the same for the CQL path): the rows go to
 * {@code rawAddRow} without a Java object per value.
 */
@FunctionalInterface
interface CqlBytes
{
    /** The value of row {@code index}; null for a null. */
    ByteBuffer get(int index);

    static CqlBytes of(FieldVector vector)
    {
        CqlBytes value = notNull(vector);
        return index -> vector.isNull(index) ? null : value.get(index);
    }

    private static CqlBytes notNull(FieldVector vector)
    {
        if (vector instanceof VarCharVector text)
            return index -> ByteBuffer.wrap(text.get(index));
        if (vector instanceof VarBinaryVector binary)
            return index -> ByteBuffer.wrap(binary.get(index));
        if (vector instanceof FixedSizeBinaryVector binary)  // a uuid: its 16 bytes
            return index -> ByteBuffer.wrap(binary.get(index));
        if (vector instanceof IntVector numbers)
            return index -> ByteBufferUtil.bytes(numbers.get(index));
        if (vector instanceof BigIntVector numbers)
            return index -> ByteBufferUtil.bytes(numbers.get(index));
        if (vector instanceof SmallIntVector numbers)
            return index -> ByteBufferUtil.bytes(numbers.get(index));
        if (vector instanceof TinyIntVector numbers)
            return index -> ByteBufferUtil.bytes(numbers.get(index));
        if (vector instanceof Float8Vector numbers)
            return index -> ByteBufferUtil.bytes(numbers.get(index));
        if (vector instanceof Float4Vector numbers)
            return index -> ByteBufferUtil.bytes(numbers.get(index));
        if (vector instanceof BitVector flags)
            return index -> ByteBuffer.wrap(new byte[]{(byte) flags.get(index)});
        if (vector instanceof DateDayVector days)  // an unsigned day count centred on 1970
            return index -> ByteBufferUtil.bytes(days.get(index) + Integer.MIN_VALUE);
        if (vector instanceof TimeStampVector ticks)
            return timestamp(ticks);
        if (vector instanceof DecimalVector decimals)
            return index -> DecimalType.instance.decompose(decimals.getObject(index));
        throw new IllegalArgumentException(
            vector.getName() + ": no CQL serialization for Arrow type " + vector.getField().getType());
    }

    /** Milliseconds since the epoch, whatever the column's unit. */
    private static CqlBytes timestamp(TimeStampVector ticks)
    {
        long perMilli = switch (((ArrowType.Timestamp) ticks.getField().getType()).getUnit())
        {
            case SECOND -> -1000;
            case MILLISECOND -> 1;
            case MICROSECOND -> 1000;
            case NANOSECOND -> 1_000_000;
        };
        return index -> {
            long value = ticks.get(index);
            return ByteBufferUtil.bytes(perMilli < 0 ? value * -perMilli
                                                     : Math.floorDiv(value, perMilli));
        };
    }
}
