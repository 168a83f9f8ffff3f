"""facemotion.face"""
