// RelayLoad: load generation for `relayctl bench` (fanout, connections, publish) against relayd and nginx+nchan.
