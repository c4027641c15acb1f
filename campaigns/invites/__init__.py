"""Invite-a-friend rewards (邀请有礼): the first-order journey's D15 step promises
them; friends invited give a coupon at each milestone, once (models.py says how)."""
