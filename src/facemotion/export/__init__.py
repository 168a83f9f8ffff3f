"""facemotion.export"""
