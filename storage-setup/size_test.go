package storagesetup

import "testing"

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want uint64
	}{
		{"2", 2 << 20}, // no suffix: MiB
		{"0", 0},
		{"512b", 512}, {"512B", 512},
		{"8s", 4096}, {"8S", 4096},
		{"512K", 512 << 10}, {"512k", 512 << 10}, {"512KB", 512 << 10}, {"512KiB", 512 << 10}, {"512kib", 512 << 10},
		{"2M", 2 << 20}, {"2G", 2 << 30}, {"2GB", 2 << 30}, {"2GiB", 2 << 30}, {"2g", 2 << 30},
		{"3T", 3 << 40}, {"1P", 1 << 50}, {"1E", 1 << 60}, {"7E", 7 << 60},
	} {
		got, err := parseBytes(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("parseBytes(%q): got %d, %v, want %d", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "G", "2X", "2 G", "-1", "2.5G", "2GiBB", "2iB", "16E", "99999999999999999999"} {
		if _, err := parseBytes(bad); err == nil {
			t.Errorf("parseBytes(%q): got nil error", bad)
		}
	}
}

func TestParseDataSize(t *testing.T) {
	for _, tc := range []struct {
		in       string
		args     []string
		size, fr uint64
		bytes    uint64
	}{
		{"40%FREE", []string{"-l", "40%FREE"}, 100, 50, 20},
		{"60%VG", []string{"-l", "60%VG"}, 100, 50, 60},
		{"100%FREE", []string{"-l", "100%FREE"}, 100, 50, 50},
		{"8GB", []string{"-L", "8g"}, 0, 0, 8 << 30},
		{"1536", []string{"-L", "1536m"}, 0, 0, 1536 << 20},
		{"3s", []string{"-L", "3s"}, 0, 0, 1536},
	} {
		d, err := parseDataSize(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if got := d.lvmArgs(); len(got) != 2 || got[0] != tc.args[0] || got[1] != tc.args[1] {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.args)
		}
		if got := d.resolve(tc.size, tc.fr); got != tc.bytes {
			t.Errorf("%q: got %d bytes, want %d", tc.in, got, tc.bytes)
		}
	}
	for _, bad := range []string{"0%FREE", "101%VG", "40%PVS", "40%ORIGIN", "%FREE", "x%VG", "ten"} {
		if _, err := parseDataSize(bad); err == nil {
			t.Errorf("parseDataSize(%q): got nil error", bad)
		}
	}
}

func TestLVMSize(t *testing.T) {
	for in, want := range map[uint64]string{2 << 30: "2g", 1536 << 20: "1536m", 512 << 10: "512k", 1536: "3s", 100: "100b", 3 << 40: "3t"} {
		if got := lvmSize(in); got != want {
			t.Errorf("lvmSize(%d): got %q, want %q", in, got, want)
		}
	}
}
