package engine

import (
	"strings"
	"testing"
)

func TestCapabilities(t *testing.T) {
	tests := []struct {
		name      string
		add, drop []string
		want      string
		wantErr   bool
	}{
		{name: "defaults", want: "CAP_AUDIT_WRITE,CAP_CHOWN,CAP_DAC_OVERRIDE,CAP_FOWNER,CAP_FSETID,CAP_KILL,CAP_MKNOD,CAP_NET_BIND_SERVICE,CAP_NET_RAW,CAP_SETFCAP,CAP_SETGID,CAP_SETPCAP,CAP_SETUID,CAP_SYS_CHROOT"},
		{name: "drop all", drop: []string{"ALL"}, want: ""},
		{name: "drop all add one", drop: []string{"all"}, add: []string{"net_bind_service"}, want: "CAP_NET_BIND_SERVICE"},
		{name: "drop some add one", drop: []string{"CHOWN", "CAP_KILL", "MKNOD", "NET_RAW", "SETFCAP", "SETPCAP", "SETGID", "SETUID", "FOWNER", "FSETID", "DAC_OVERRIDE", "AUDIT_WRITE", "SYS_CHROOT"},
			add: []string{"NET_ADMIN"}, want: "CAP_NET_ADMIN,CAP_NET_BIND_SERVICE"},
		{name: "unknown", add: []string{"bogus"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ProcessOptions{CapAdd: tt.add, CapDrop: tt.drop}.Capabilities()
			if (err != nil) != tt.wantErr {
				t.Fatalf("got error %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && (strings.Join(got, ",") != tt.want || got == nil) {
				t.Errorf("got %q, want %q (and not nil)", got, tt.want)
			}
		})
	}
	got, err := ProcessOptions{CapAdd: []string{"ALL"}, CapDrop: []string{"SYS_ADMIN"}}.Capabilities()
	if err != nil || len(got) < 38 || strings.Contains(strings.Join(got, ","), "CAP_SYS_ADMIN") {
		t.Errorf("add ALL drop SYS_ADMIN: got %q, %v", got, err)
	}
}

func TestEtcFiles(t *testing.T) {
	hosts := []byte("127.0.0.1\tlocalhost\n")
	resolv := []byte("nameserver 10.0.0.1\nsearch lan\noptions ndots:1\n")
	o := ProcessOptions{DNS: []string{"1.1.1.1", "9.9.9.9"}, DNSSearch: []string{"a.example", "b.example"}, ExtraHosts: []string{"db:10.1.1.1", "v6:fd00::1", "eq=10.2.2.2"}}
	h, r := o.etcFiles(hosts, resolv)
	if want := "127.0.0.1\tlocalhost\n10.1.1.1\tdb\nfd00::1\tv6\n10.2.2.2\teq\n"; string(h) != want {
		t.Errorf("hosts: got %q, want %q", h, want)
	}
	if want := "options ndots:1\nnameserver 1.1.1.1\nnameserver 9.9.9.9\nsearch a.example b.example\n"; string(r) != want {
		t.Errorf("resolv.conf: got %q, want %q", r, want)
	}
	if _, r := (ProcessOptions{}).etcFiles(hosts, resolv); string(r) != string(resolv) {
		t.Errorf("no options: got %q, want it unchanged", r)
	}
}

func TestValidateProcess(t *testing.T) {
	bad := 5
	tests := []struct {
		name string
		spec ContainerSpec
		want string
	}{
		{"signal", ContainerSpec{Name: "a", Image: "i", ProcessOptions: ProcessOptions{StopSignal: "SIGBOGUS"}}, "stopSignal"},
		{"dns", ContainerSpec{Name: "a", Image: "i", ProcessOptions: ProcessOptions{DNS: []string{"dns.example"}}}, "dns[0]"},
		{"host", ContainerSpec{Name: "a", Image: "i", ProcessOptions: ProcessOptions{ExtraHosts: []string{"nohost"}}}, "extraHosts[0]"},
		{"cap", ContainerSpec{Name: "a", Image: "i", ProcessOptions: ProcessOptions{CapDrop: []string{"nope"}}}, "capAdd/capDrop"},
		{"host network", ContainerSpec{Name: "a", Image: "i", Network: "host", ProcessOptions: ProcessOptions{DNS: []string{"1.1.1.1"}}}, "not with the host network"},
		{"timeout", ContainerSpec{Name: "a", Image: "i", ProcessOptions: ProcessOptions{StopTimeout: func() *int { v := -bad; return &v }()}}, "stopTimeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.spec.Validate(); err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error naming %s", err, tt.want)
			}
		})
	}
	ok := ContainerSpec{Name: "a", Image: "i", ProcessOptions: ProcessOptions{StopSignal: "USR1", DNS: []string{"1.1.1.1"}, ExtraHosts: []string{"db:10.0.0.1"}, CapAdd: []string{"NET_ADMIN"}}}
	if err := ok.Validate(); err != nil {
		t.Errorf("valid options: got %v", err)
	}
}
