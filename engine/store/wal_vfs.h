// A SQLite VFS over the platform's default one that writes each transaction's write-ahead log in
// one system call instead of two per page.
//
// SQLite appends a commit to the log frame by frame, each frame as two writes (its 24-byte header,
// then the page). On a paravirtualised machine a system call costs microseconds, and the engine
// writes tens of frames per message. This VFS keeps a log file's consecutive writes in memory and
// hands them to the file in one write (per 124 KiB: the most SQLite's unix VFS writes at once)
// when the transaction's commit frame is complete, before any
// read, sync, size query or truncation of that log, before the log grows past 4 MiB unwritten, and
// before the connection touches the shared-memory index (where a commit is published to other
// connections). So no other connection, and no reader of this one, can see a frame that is not in
// the file yet, and a commit that returned is in the operating system's hands exactly as before: a
// process crash loses nothing the plain VFS would have kept, and a flush of the log file (fsync)
// covers the same bytes.
//
// Reads of a log are copied from a read-only shared mapping of it (one per log file and process)
// instead of a system call each: every connection's page cache is dropped when another connection
// commits, so the pages it reads back are mostly recent frames of the log. See LogMap in the .cc
// for why a mapped read never touches a page past the end of the file. Database files and
// everything else pass straight through.
//
// Thread-safety: SQLite serialises the calls on one file handle; the statistics are atomic.
#pragma once

#include <cstdint>

namespace switchboard::store {

// Registers the VFS as the process's default, once (later calls return the first answer). Call
// before any database is opened, e.g. at static initialisation. Setting the environment variable
// SWITCHBOARD_SQLITE_PLAIN_VFS=1 leaves SQLite's own VFS in place (for comparisons); returns false
// then.
bool installWalCoalescingVfs();

struct WalVfsStats {
  std::uint64_t logWrites = 0;       // writes SQLite asked for on log files
  std::uint64_t logSyscalls = 0;     // writes this VFS made to log files
  std::uint64_t logReads = 0;        // reads SQLite asked for on log files
  std::uint64_t logMappedReads = 0;  // of those, copied from the log's mapping (no system call)
};
WalVfsStats walVfsStats();

}  // namespace switchboard::store
