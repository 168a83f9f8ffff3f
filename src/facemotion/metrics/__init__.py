"""facemotion.metrics"""
