import Testing
@testable import Appliance

@Test func placeholderConfigParses() {
    #expect(ApplianceConfig.parseSize("64MiB") == 64 << 20)
}
