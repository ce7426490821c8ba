package engine

import "testing"

func TestParsePort(t *testing.T) {
	cases := []struct {
		in   string
		want Port
		bad  bool
	}{
		{in: "8080:80", want: Port{HostPort: 8080, ContainerPort: 80, Proto: "tcp"}},
		{in: "127.0.0.1:5353:53/udp", want: Port{HostIP: "127.0.0.1", HostPort: 5353, ContainerPort: 53, Proto: "udp"}},
		// A missing or 0 host port is a random one (docker run -p 80).
		{in: "80", want: Port{ContainerPort: 80, Proto: "tcp"}},
		{in: "53/udp", want: Port{ContainerPort: 53, Proto: "udp"}},
		{in: ":80", want: Port{ContainerPort: 80, Proto: "tcp"}},
		{in: "0:80", want: Port{ContainerPort: 80, Proto: "tcp"}},
		{in: "127.0.0.1::80", want: Port{HostIP: "127.0.0.1", ContainerPort: 80, Proto: "tcp"}},
		{in: "x", bad: true},
		{in: "99999:80", bad: true},
		{in: "8080:0", bad: true},
		{in: "-1:80", bad: true},
		{in: "host::80", bad: true},
		{in: "80/sctp", bad: true},
		{in: "1:2:3:4", bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePort(tc.in)
			if tc.bad {
				if err == nil {
					t.Errorf("got %+v, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %+v, %v, want %+v", got, err, tc.want)
			}
		})
	}
}

func TestParseExpose(t *testing.T) {
	cases := []struct {
		in   string
		want Port
		bad  bool
	}{
		{in: "80", want: Port{ContainerPort: 80, Proto: "tcp"}},
		{in: "80/tcp", want: Port{ContainerPort: 80, Proto: "tcp"}},
		{in: "53/udp", want: Port{ContainerPort: 53, Proto: "udp"}},
		{in: "8000-8010/tcp", bad: true}, // a range: not published by -P here
		{in: "0", bad: true},
		{in: "80/sctp", bad: true},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseExpose(tc.in)
			if tc.bad != (err != nil) || (!tc.bad && got != tc.want) {
				t.Errorf("got %+v, %v, want %+v (error: %v)", got, err, tc.want, tc.bad)
			}
		})
	}
}

func FuzzParsePort(f *testing.F) {
	for _, s := range []string{"8080:80", "127.0.0.1::53/udp", "80", "::1:80:80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParsePort(s)
		if err != nil {
			return
		}
		if p.HostPort < 0 || p.HostPort > 65535 || p.ContainerPort < 1 || p.ContainerPort > 65535 || (p.Proto != "tcp" && p.Proto != "udp") {
			t.Errorf("ParsePort(%q) = %+v: out of range", s, p)
		}
	})
}
