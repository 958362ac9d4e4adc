// YjsSync: lib0 codec, y-protocols messages, Yjs update algebra, document store.
