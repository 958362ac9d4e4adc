import Foundation
import GRDB

/// An online backup of relayd's data directory: each SQLite database is copied
/// with SQLite's backup API in one step, so the copy is one consistent snapshot
/// even while relayd writes (WAL mode lets it go on writing), then checked with
/// `PRAGMA integrity_check`. Every copy has mode 0600 (they hold secrets). Restore is
/// copying the backup directory back as the data directory while relayd is stopped.
public enum DataDirectoryBackup {
    /// The files of a data directory, in the order they are copied.
    public static let databases = ["sites.sqlite", "yjs.sqlite"]
    public static let plainFiles = ["admin.key"]

    public struct Copied: Sendable {
        public let name: String
        public let bytes: Int64
        /// `ok`, or the first problem `integrity_check` reported.
        public let integrity: String
    }

    public struct Failure: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    /// Copies `source` into `destination`, which must not exist or be empty
    /// (a backup never overwrites anything). `progress` is told of each file.
    @discardableResult
    public static func backup(from source: String, to destination: String,
                              progress: (String) -> Void = { _ in }) throws -> [Copied] {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: source, isDirectory: &isDir), isDir.boolValue else {
            throw Failure("no data directory at \(source)")
        }
        guard databases.contains(where: { fm.fileExists(atPath: source + "/" + $0) }) else {
            throw Failure("\(source) holds neither sites.sqlite nor yjs.sqlite: not a relayd data directory")
        }
        if fm.fileExists(atPath: destination) {
            let entries = (try? fm.contentsOfDirectory(atPath: destination)) ?? ["?"]
            guard entries.isEmpty else { throw Failure("\(destination) exists and is not empty: a backup never overwrites") }
        }
        try fm.createDirectory(atPath: destination, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        var copied: [Copied] = []
        for name in databases where fm.fileExists(atPath: source + "/" + name) {
            progress("\(name): copying")
            var config = Configuration()
            config.busyMode = .timeout(10)
            let from = try DatabaseQueue(path: source + "/" + name, configuration: config)
            let target = destination + "/" + name
            let to = try DatabaseQueue(path: target)
            try from.backup(to: to)
            let integrity = try to.read { db in try String.fetchOne(db, sql: "PRAGMA integrity_check") } ?? "no answer"
            try to.close()
            try from.close()
            try fm.setAttributes([.posixPermissions: 0o600], ofItemAtPath: target)  // it holds the sites' secrets
            let bytes = (try? fm.attributesOfItem(atPath: target)[.size] as? Int64) ?? 0
            guard integrity == "ok" else { throw Failure("\(name): the copy fails integrity_check: \(integrity)") }
            progress("\(name): \(bytes) bytes, integrity ok")
            copied.append(Copied(name: name, bytes: bytes ?? 0, integrity: integrity))
        }
        for name in plainFiles where fm.fileExists(atPath: source + "/" + name) {
            let target = destination + "/" + name
            try fm.copyItem(atPath: source + "/" + name, toPath: target)
            try fm.setAttributes([.posixPermissions: 0o600], ofItemAtPath: target)
            let bytes = (try? fm.attributesOfItem(atPath: target)[.size] as? Int64) ?? 0
            progress("\(name): copied (mode 600)")
            copied.append(Copied(name: name, bytes: bytes ?? 0, integrity: "ok"))
        }
        return copied
    }
}
