// Package client talks to hostd's JSON API over its unix socket. hostctl
// uses it; it touches nothing on disk but the socket.
package client
