package cloudconfig

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bulkhead-os/bulkhead/internal/golden"
)

// TestCorpus splits and parses every file under testdata/in and compares
// the parts, the decoded config and the problems with a golden file.
func TestCorpus(t *testing.T) {
	files, err := filepath.Glob("testdata/in/*")
	if err != nil || len(files) == 0 {
		t.Fatalf("no corpus: %v", err)
	}
	for _, f := range files {
		name := filepath.Base(f)
		t.Run(name, func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			golden.Assert(t, "out/"+name+".golden", []byte(describe(data)))
		})
	}
}

func describe(data []byte) string {
	var b strings.Builder
	parts, probs := Split(data)
	var docs [][]byte
	for _, p := range parts {
		fmt.Fprintf(&b, "part %s %s (%d bytes)\n", p.Kind, p.Name, len(p.Content))
		if p.Kind == KindCloudConfig {
			docs = append(docs, p.Content)
		}
	}
	for _, p := range probs {
		fmt.Fprintf(&b, "problem: %s\n", p.Error())
	}
	if len(docs) > 0 {
		cfg, probs := ParseDocs(docs)
		for _, p := range probs {
			fmt.Fprintf(&b, "problem: %s\n", p.Error())
		}
		js, _ := json.MarshalIndent(cfg, "", "  ")
		b.Write(js)
		b.WriteByte('\n')
	}
	return b.String()
}

func TestPerm(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Perm
		err  bool
	}{
		{`"0644"`, 0o644, false},
		{`0644`, 0o644, false},
		{`"0o600"`, 0o600, false},
		{`420`, 0o644, false},
		{`"755"`, 0o755, false},
		{`"rwx"`, 0, true},
		{`"0999"`, 0, true},
	} {
		t.Run(tc.in, func(t *testing.T) {
			cfg, probs := Parse([]byte("write_files:\n- path: /x\n  permissions: " + tc.in + "\n"))
			if tc.err {
				if len(probs) == 0 {
					t.Errorf("got no problem, want one")
				}
				return
			}
			if len(probs) > 0 {
				t.Fatalf("got problems %v", probs)
			}
			if got := *cfg.WriteFiles[0].Permissions; got != tc.want {
				t.Errorf("got %o, want %o", got, tc.want)
			}
		})
	}
}

func TestDecodeContent(t *testing.T) {
	for _, tc := range []struct {
		name, content, enc, want string
		err                      bool
	}{
		{"plain", "hi", "", "hi", false},
		{"b64", "aGk=", "b64", "hi", false},
		{"base64 with newlines", "aG\nk=\n", "base64", "hi", false},
		{"gz+b64", "H4sIAAAAAAAAA8vIBACsKpPYAgAAAA==", "gz+b64", "hi", false},
		{"bad b64", "!!!", "b64", "", true},
		{"bad encoding", "x", "rot13", "", true},
		{"gzip not gzip", "hi", "gzip", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeContent(tc.content, tc.enc)
			if (err != nil) != tc.err {
				t.Fatalf("got error %v, want error %v", err, tc.err)
			}
			if string(got) != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseMetaData(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     MetaData
		err      bool
	}{
		{"yaml", "instance-id: i-1\nlocal-hostname: h\n", MetaData{InstanceID: "i-1", LocalHostname: "h"}, false},
		{"json", `{"instance-id": "i-2", "hostname": "h2", "public-keys": ["ssh-ed25519 A"]}`, MetaData{InstanceID: "i-2", LocalHostname: "h2", PublicKeys: []string{"ssh-ed25519 A"}}, false},
		{"ec2 map keys", "instance-id: 3\npublic-keys:\n  0:\n    openssh-key: ssh-rsa B\n", MetaData{InstanceID: "3", PublicKeys: []string{"ssh-rsa B"}}, false},
		{"malformed", "instance-id: [\n", MetaData{}, true},
		{"bad type", "instance-id: {a: 1}\n", MetaData{}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseMetaData([]byte(tc.in))
			if (err != nil) != tc.err {
				t.Fatalf("got error %v, want error %v", err, tc.err)
			}
			if tc.err {
				return
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseNetworkConfig(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     string
		err      bool
	}{
		{"v2", "version: 2\nethernets:\n  eth0: {dhcp4: true}\n", "{2 [eth0]}", false},
		{"v2 wrapped", "network:\n  version: 2\n  ethernets: {ens3: {}}\n", "{2 [ens3]}", false},
		{"v1", "version: 1\nconfig:\n- {type: physical, name: eth0}\n", "{1 [eth0]}", false},
		{"v3", "version: 3\n", "", true},
		{"no version", "ethernets: {}\n", "", true},
		{"bad ethernets", "version: 2\nethernets: [a]\n", "", true},
		{"disabled", "network: {config: disabled}\n", "{0 []}", false},
		{"v1 mac renames", "version: 1\nconfig:\n- {type: physical, name: lan0, mac_address: '52:54:00:AA:bb:01'}\n", "{1 [lan0]}", false},
		{"v2 bond member missing", "version: 2\nbonds: {bond0: {interfaces: [eth9]}}\n", "", true},
		{"v1 duplicate name", "version: 1\nconfig:\n- {type: physical, name: eth0}\n- {type: physical, name: eth0}\n", "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseNetworkConfig([]byte(tc.in))
			if (err != nil) != tc.err {
				t.Fatalf("got error %v, want error %v", err, tc.err)
			}
			if outline := fmt.Sprint(struct {
				V  int
				If []string
			}{got.Version, got.Interfaces}); !tc.err && outline != tc.want {
				t.Errorf("got %q, want %q", outline, tc.want)
			}
		})
	}
}

func FuzzUserData(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/in/*")
	for _, s := range seeds {
		data, _ := os.ReadFile(s)
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parts, _ := Split(data)
		var docs [][]byte
		for _, p := range parts {
			if p.Kind == KindCloudConfig {
				docs = append(docs, p.Content)
			}
		}
		cfg, probs := ParseDocs(docs)
		// Whatever parses is usable: no chpasswd line spans lines (a
		// multi-line string is split into lines, never kept whole), and
		// every problem says what is wrong.
		if c := cfg.Chpasswd; c != nil {
			for _, l := range c.List {
				if strings.ContainsAny(l, "\n\r") {
					t.Fatalf("chpasswd.list item %q spans lines", l)
				}
			}
		}
		for _, p := range probs {
			if p.Msg == "" {
				t.Fatalf("problem at %q without a message", p.Path)
			}
		}
	})
}

func FuzzMetaData(f *testing.F) {
	f.Add([]byte("instance-id: i-1\nlocal-hostname: h\npublic-keys: [a]\n"))
	f.Add([]byte(`{"instance-id": "x", "public-keys": {"0": {"openssh-key": "k"}}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		ParseMetaData(data)
	})
}

func FuzzNetworkConfig(f *testing.F) {
	f.Add([]byte("version: 2\nethernets:\n  eth0: {dhcp4: true}\n"))
	f.Add([]byte("version: 1\nconfig:\n- {type: physical, name: eth0}\n"))
	f.Add([]byte("version: 1\nconfig:\n- {type: physical, name: eth0, mac_address: '52:54:00:12:34:56', subnets: [{type: static, address: 10.0.0.2, netmask: 255.255.255.0, routes: [{network: 0.0.0.0, netmask: 0.0.0.0, gateway: 10.0.0.1}]}]}\n- {type: nameserver, address: [10.0.0.53]}\n"))
	f.Add([]byte("version: 2\nethernets:\n  nic0:\n    match: {macaddress: '52:54:00:12:34:56'}\n    set-name: lan0\n    addresses: [10.0.2.15/24]\n    gateway4: 10.0.2.2\n    routes: [{to: default, via: 10.0.2.2}]\n    nameservers: {addresses: [10.0.2.3]}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		nc, err := ParseNetworkConfig(data)
		if err != nil {
			return
		}
		// Whatever parses must be usable to render: every link has a
		// file name and something to match on.
		for _, l := range nc.Links {
			if l.ID == "" || l.Match == (NetMatch{}) {
				t.Fatalf("link %+v: no id or no match", l)
			}
		}
	})
}

func FuzzENI(f *testing.F) {
	f.Add("auto eth0\niface eth0 inet static\n  address 10.0.0.5\n  netmask 255.255.255.0\n  gateway 10.0.0.1\n")
	f.Add("iface ens3 inet dhcp\n  hwaddress ether 52:54:00:12:34:56\niface ens3 inet6 auto\n")
	f.Fuzz(func(t *testing.T, text string) {
		ParseENI(text)
	})
}
