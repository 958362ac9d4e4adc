print("relayd: not yet serving")
