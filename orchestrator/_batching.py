class BatchPool: pass
class PoolResult: pass
