package fr.mmg.cre.sstables;

import java.io.BufferedInputStream;
import java.io.DataInputStream;
import java.io.EOFException;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.net.InetSocketAddress;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;

import com.fasterxml.jackson.databind.ObjectMapper;

import org.apache.arrow.memory.BufferAllocator;
import org.apache.arrow.memory.RootAllocator;

import org.apache.cassandra.tools.SSTableStreamer;

/**
 * One JVM per worker: the tables' bulk writers of every bulk write in that worker's process.
 *
 * <p>Requests come on stdin, one frame each: a byte (O open, D data, C close and load, Q quit),
 * the channel (int), the payload's length (int) and the payload. OPEN's payload is the JSON of
 * a {@link TableSpec}, DATA's an Arrow IPC stream of rows, CLOSE's empty. Replies go to
 * stdout, one JSON line each, for OPEN and CLOSE only (a data error is kept and reported by
 * the CLOSE), so that the rows are never waited for batch by batch. Anything else the JVM
 * prints goes to stderr.
 */
public final class SSTableWriterService
{
    private static final ObjectMapper JSON = new ObjectMapper();

    private final PrintStream replies;
    private final Map<Integer, TableChannel> channels = new HashMap<>();
    private final Map<String, SSTableStreamer> streamers = new HashMap<>();
    private final ExecutorService loads = Executors.newCachedThreadPool(runnable -> {
        Thread thread = new Thread(runnable, "sstable-load");
        thread.setDaemon(true);
        return thread;
    });
    private final BufferAllocator allocator = new RootAllocator();

    private SSTableWriterService(PrintStream replies)
    {
        this.replies = replies;
    }

    public static void main(String[] args) throws Exception
    {
        PrintStream replies = new PrintStream(System.out, true, StandardCharsets.UTF_8);
        System.setOut(System.err);
        try
        {
            new SSTableWriterService(replies).serve(
                new DataInputStream(new BufferedInputStream(System.in, 1 << 20)));
        }
        catch (Throwable error)
        {
            // the worker must not wait for replies that will never come: it sees the exit
            error.printStackTrace();
            System.exit(1);
        }
        System.exit(0);
    }

    private void serve(DataInputStream in) throws IOException, InterruptedException
    {
        while (true)
        {
            byte operation;
            try
            {
                operation = in.readByte();
            }
            catch (EOFException closed)
            {
                return;  // the worker went away: what it did not close is not loaded
            }
            int channel = in.readInt();
            byte[] payload = new byte[in.readInt()];
            in.readFully(payload);
            switch (operation)
            {
                case 'O' -> open(channel, payload);
                case 'D' -> data(channel, payload);
                case 'C' -> close(channel);
                case 'Q' -> { return; }
                default -> throw new IOException("unknown request " + operation);
            }
        }
    }

    private void open(int channel, byte[] payload)
    {
        try
        {
            TableSpec spec = JSON.readValue(payload, TableSpec.class);
            channels.put(channel, new TableChannel(spec, streamer(spec), loads));
            reply(channel, Map.of("ok", true));
        }
        catch (Exception error)
        {
            reply(channel, failure(error));
        }
    }

    /** One streamer per cluster and keyspace: the ring and schema read once per worker. */
    private SSTableStreamer streamer(TableSpec spec)
    {
        Target target = spec.target;
        String key = String.join(",", target.hosts) + ":" + target.nativePort + "/" + spec.keyspace
                     + "@" + target.username;
        return streamers.computeIfAbsent(key, unused -> {
            Set<InetSocketAddress> hosts = new HashSet<>();
            for (String host : target.hosts)
                hosts.add(new InetSocketAddress(host, target.nativePort));
            return new SSTableStreamer(hosts, target.storagePort, target.storageCompatibilityMode,
                                       target.username, target.password,
                                       target.connectionsPerHost);
        });
    }

    private void data(int channel, byte[] payload) throws InterruptedException
    {
        TableChannel table = channels.get(channel);
        if (table != null)
            table.submit(payload, allocator);
    }

    private void close(int channel)
    {
        TableChannel table = channels.remove(channel);
        loads.submit(() -> {
            try
            {
                Map<String, Object> loaded = new LinkedHashMap<>(table.close());
                loaded.put("ok", true);
                reply(channel, loaded);
            }
            catch (Throwable error)
            {
                reply(channel, failure(error));
            }
            finally
            {
                table.discard();
            }
        });
    }

    /** The error and its causes, each message once (a cause's text is often repeated by the
     * error wrapping it), on one line: the worker logs it and the ledger keeps it. */
    private static Map<String, Object> failure(Throwable error)
    {
        StringBuilder message = new StringBuilder();
        for (Throwable cause = error; cause != null;
             cause = cause.getCause() == cause ? null : cause.getCause())
        {
            String text = String.valueOf(cause);
            if (message.indexOf(text) < 0)
                message.append(message.length() == 0 ? "" : ": ").append(text);
        }
        return Map.of("ok", false, "error", String.join(" ", message.toString().split("\\s+")));
    }

    private synchronized void reply(int channel, Map<String, Object> body)
    {
        Map<String, Object> line = new LinkedHashMap<>(body);
        line.put("channel", channel);
        try
        {
            replies.println(JSON.writeValueAsString(line));
        }
        catch (IOException unlikely)
        {
            throw new IllegalStateException(unlikely);
        }
    }
}
