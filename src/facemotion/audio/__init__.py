"""facemotion.audio"""
