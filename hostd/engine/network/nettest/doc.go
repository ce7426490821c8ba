// Package nettest runs network tests apart from the host: a test re-run
// in a network namespace of its own (InNetns), a network manager with the
// default bridge there (Manager) and a stand-in for the host's resolver
// (FakeUpstream).
package nettest
