/// The release this build belongs to. `make dist` writes the commit into its
/// exported copy of this file; a development build says `dev`.
public enum RelayVersion {
    /// Semantic version of relayd, relayctl and the protocol they speak.
    public static let version = "0.9.0"
    /// The git commit the binaries were built from (`dev` outside `make dist`).
    public static let commit = "dev"
    /// `0.9.0 (commit abc1234)`, as `--version` prints it.
    public static var description: String { "\(version) (commit \(commit))" }
}
