package qemutests

import (
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/golden"
)

func TestQemuArgsGolden(t *testing.T) {
	cases := map[string]Config{
		"bios": {Firmware: BIOS, Accel: "tcg", MemoryMB: 1536, CPUs: 2, Disk: "/t/disk.qcow2",
			QGASock: "/t/qga.sock", QMPSock: "/t/qmp.sock"},
		"secure-boot": {Firmware: SecureBoot, Accel: "kvm", MemoryMB: 2048, CPUs: 2, Disk: "/t/disk.qcow2",
			VarsFile: "/t/vars.fd", QGASock: "/t/qga.sock", QMPSock: "/t/qmp.sock",
			Extra:   []Disk{{File: "/t/seed.iso", CDROM: true, Bus: "sata"}, {File: "/t/data.qcow2", Serial: "data1"}},
			NetOpts: []string{"hostfwd=tcp::2222-:22"}, FwCfg: map[string]string{"opt/com.coreos/config": "/t/config.ign"}},
		"ec2-nvme": {Firmware: UEFI, Accel: "tcg", MemoryMB: 1536, CPUs: 2, Disk: "/t/disk.qcow2", DiskBus: "nvme",
			VarsFile: "/t/vars.fd", QGASock: "/t/qga.sock", QMPSock: "/t/qmp.sock",
			SMBIOS: []string{"type=1,manufacturer=Amazon EC2"}},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			golden.Assert(t, "qemu-"+name+".args", []byte(strings.Join(QemuArgs(c), "\n")+"\n"))
		})
	}
}
