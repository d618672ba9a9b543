// swift-tools-version:6.2
// ZoneWatch: passive OT/ICS security monitor. The target list follows the data's path:
// capture → decode → flows → protocols → policy → detection → output, wired by Engine.
import PackageDescription

/// A directory holding a linker script named libstdc++.so that makes -lstdc++ link GCC's libstdc++.a (see it).
let staticLibstdcxx = String(#filePath.dropLast("Package.swift".count)) + "scripts/link"

// No module uses Swift concurrency or regexes: not importing their runtimes implicitly keeps
// libswift_Concurrency (with libdispatch) and libswift_StringProcessing out of the binary, whose
// every library costs each process start-up page faults and symbol lookups (~1.2 ms for these).
let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny"),
                              .unsafeFlags(["-Xfrontend", "-disable-implicit-concurrency-module-import",
                                            "-Xfrontend", "-disable-implicit-string-processing-module-import"])]

let package = Package(
    name: "ZoneWatch",
    products: [
        .executable(name: "zonewatch", targets: ["zonewatch"]),
    ],
    targets: [
        // C module shims over Debian libraries.
        .systemLibrary(name: "CPcap", path: "Sources/CPcap", pkgConfig: "libpcap",
                       providers: [.apt(["libpcap-dev"])]),
        // OpenSSL (libssl-dev's headers), loaded with dlopen on first use rather than linked: see its header.
        // DWARF 4: Debian 12's valgrind (3.19) gives up on clang's default DWARF 5, and callgrind counts are
        // how changes are measured here.
        .target(name: "COpenSSL", path: "Sources/COpenSSL", cSettings: [.unsafeFlags(["-gdwarf-4"])]),
        .systemLibrary(name: "CYAML", path: "Sources/CYAML", pkgConfig: "yaml-0.1",
                       providers: [.apt(["libyaml-dev"])]),
        // A cache prefetch hint (a compiler builtin; no library).
        .systemLibrary(name: "CPrefetch", path: "Sources/CPrefetch"),
        // The DNP3 link CRC by carry-less multiplication (inline assembly; no library).
        .systemLibrary(name: "CDNP3CRC", path: "Sources/Protocols/CDNP3CRC"),

        // Shared vocabulary: byte views, addresses, packet time.
        .target(name: "Wire", swiftSettings: strict),
        // What crosses between stages: operations, anomalies, alerts, JSON records, the dissector contract.
        .target(name: "Records", dependencies: ["Wire", "COpenSSL"], swiftSettings: strict),

        .target(name: "Capture", dependencies: ["CPcap", "Wire"], swiftSettings: strict),
        .target(name: "Decode", dependencies: ["Wire"], swiftSettings: strict),
        .target(name: "Flows", dependencies: ["Wire", "Decode", "Records", "COpenSSL", "CPrefetch"], swiftSettings: strict),

        .target(name: "Modbus", dependencies: ["Wire", "Records"], path: "Sources/Protocols/Modbus",
                exclude: ["CONFORMANCE.md"], swiftSettings: strict),
        .target(name: "DNP3", dependencies: ["Wire", "Records", "CDNP3CRC"], path: "Sources/Protocols/DNP3",
                exclude: ["CONFORMANCE.md"], swiftSettings: strict),
        .target(name: "S7comm", dependencies: ["Wire", "Records"], path: "Sources/Protocols/S7comm",
                exclude: ["CONFORMANCE.md"], swiftSettings: strict),

        .target(name: "Policy", dependencies: ["Wire", "Records", "CYAML"], swiftSettings: strict),
        .target(name: "Detection", dependencies: ["Wire", "Records", "Policy", "CPrefetch"], exclude: ["RULES.md"], swiftSettings: strict),
        .target(name: "Output", dependencies: ["Wire", "Records", "COpenSSL"], swiftSettings: strict),

        // One worker's pipeline: decode → flows → dissectors; policy and detection plug in as an EngineObserver.
        .target(name: "Engine", dependencies: ["Wire", "Records", "Capture", "Decode", "Flows", "CPrefetch",
                                               "Modbus", "DNP3", "S7comm"],
                swiftSettings: strict),
        // Appliance mode: configuration file, privilege drop, multi-worker pipeline, stats and metrics.
        .systemLibrary(name: "CAppliance", path: "Sources/CAppliance"),
        .target(name: "Appliance", dependencies: ["CAppliance", "CPrefetch", "Wire", "Records", "Capture", "Decode", "Flows",
                                                  "Engine", "Policy", "Detection", "Output"],
                swiftSettings: strict),
        .executableTarget(name: "zonewatch", dependencies: ["Engine", "Capture", "Decode", "Flows", "Policy", "Detection",
                                                           "Output", "Records", "Wire", "Appliance"],
                          swiftSettings: strict,
                          // The Swift runtime linked in rather than loaded: every replay starts without
                          // libswiftCore's symbol bindings and page faults (~1.2 ms of each start-up).
                          // So is the C++ runtime it needs (libstdc++.so.6: ~0.5 ms more).
                          linkerSettings: [.unsafeFlags(["-static-stdlib", "-L", staticLibstdcxx])]),

        .testTarget(name: "WireTests", dependencies: ["Wire", "Records"]),
        .testTarget(name: "DecodeTests", dependencies: ["Decode", "Wire"]),
        .testTarget(name: "FlowsTests", dependencies: ["Flows", "Decode", "Wire", "Records"]),
        .testTarget(name: "ModbusTests", dependencies: ["Modbus", "Records", "Wire"]),
        .testTarget(name: "DNP3Tests", dependencies: ["DNP3", "Records", "Wire"]),
        .testTarget(name: "S7commTests", dependencies: ["S7comm", "Records", "Wire"]),
        .testTarget(name: "PolicyTests", dependencies: ["Policy", "Detection", "Records", "Wire", "Engine", "Capture", "Flows"]),
        .testTarget(name: "OutputTests", dependencies: ["Output", "Records", "Wire"]),
        .testTarget(name: "EngineTests", dependencies: ["Engine", "Capture", "Records", "Wire"]),
        .testTarget(name: "ApplianceTests", dependencies: ["Appliance", "Engine", "Capture", "Decode", "Flows", "Policy",
                                                           "Detection", "Output", "Records", "Wire"]),
    ]
)
