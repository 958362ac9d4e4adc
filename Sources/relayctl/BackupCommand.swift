import ArgumentParser
import Foundation
import RelaySites

/// `relayctl backup`: an online copy of a data directory (relayd may keep running).
struct Backup: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Copy relayd's data directory while it runs (SQLite online backup, integrity-checked).",
        discussion: """
            Each database (sites.sqlite, yjs.sqlite) is copied as one consistent snapshot with SQLite's backup \
            API and checked with PRAGMA integrity_check; admin.key is copied with mode 600. The destination must \
            not exist or be empty. To restore: stop relayd, move the damaged data directory aside, copy the \
            backup in its place (owned by relayd's user), start relayd. See Docs/self-hosting.md.
            """)

    @Option(name: .customLong("data-dir"), help: "relayd's data directory.") var dataDir: String
    @Option(help: "New directory for the copy.") var to: String

    func run() throws {
        do {
            let copied = try DataDirectoryBackup.backup(from: dataDir, to: to) { IO.line($0) }
            let total = copied.reduce(Int64(0)) { $0 + $1.bytes }
            IO.line("backup complete: \(copied.count) files, \(total) bytes in \(to)")
        } catch {
            throw CLIError("backup failed: \(error)")
        }
    }
}
