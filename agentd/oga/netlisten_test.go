package oga_test

import "net"

func netListen(path string) (net.Listener, error) { return net.Listen("unix", path) }
