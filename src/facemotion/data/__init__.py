"""facemotion.data"""
